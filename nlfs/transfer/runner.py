"""`nlfs eliminate` / `nlfs transfer` without --plan: the planner and evaluations on this machine.

The same two functions the nlfs-transfer workflow runs (a planner call, evaluations), driven
to completion with the local executor's process pool (`nlfs.local`). All state is in the
store, so an interrupted run resumes with the same command.
"""

from __future__ import annotations

import sys
from concurrent.futures import FIRST_EXCEPTION, wait

from nlfs.local import _pool, _stop, evaluate_one
from nlfs.runs import open_run
from nlfs.transfer.plan import Until, plan
from nlfs.transfer.protocol import Protocol
from nlfs.transfer.records import ProtocolState


def run_protocol(run_uri: str, protocol: Protocol | None, *, until: Until, workers: int,
                 quiet: bool = False) -> ProtocolState:
    """Plan, evaluate every open unit, repeat until the protocol (or its elimination) is done."""
    run = open_run(run_uri)
    say = (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    pool = None
    try:
        while True:
            step = plan(run, protocol, until=until)
            protocol = None  # stored now; later calls read it from the run
            if step.done:
                break
            state = step.state
            what = f"elimination phase {state.phase}" if state.step == "eliminate" else "transfer grid"
            say(f"nlfs {until}: {what}: {len(step.units)} evaluation(s) to run")
            if pool is None:
                pool = _pool(workers)
            futures = [pool.submit(evaluate_one, run.uri, u.stage, u.genome, u.profile, u.set) for u in step.units]
            pending = set(futures)
            while pending:
                # A timeout keeps Ctrl-C prompt, as in nlfs.local.search.
                complete, pending = wait(pending, return_when=FIRST_EXCEPTION, timeout=1.0)
                for f in complete:
                    f.result()  # a worker's error (bad store, unknown profile) stops here
    except BaseException:
        if pool is not None:
            _stop(pool)
        raise
    if pool is not None:
        pool.shutdown(wait=True)
    return step.state
