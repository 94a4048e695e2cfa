"""Loss genomes: the search space, its JSON form, integrity check, mutation, compilation, rendering.

    from nlfs.genome import Genome, check, random_genome, mutate
"""

from nlfs.genome.compile import GenomeLoss, compile_genome
from nlfs.genome.graph import GENOME_FORMAT, Genome, GenomeError, Node
from nlfs.genome.integrity import REASONS, KnownLosses, Verdict, check, probe_curve
from nlfs.genome.mutate import mutate, random_genome
from nlfs.genome.render import describe, infix, latex, simplified

__all__ = [
    "GENOME_FORMAT", "Genome", "GenomeError", "GenomeLoss", "KnownLosses", "Node", "REASONS",
    "Verdict", "check", "compile_genome", "describe", "infix", "latex", "mutate", "probe_curve",
    "random_genome", "simplified",
]
