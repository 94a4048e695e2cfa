"""nlfs on Argo Workflows: render, bound, submit and follow the Workflows of the templates in workflows/.

`params` (the templates' parameters, validated), `bounds` (how large one Workflow grows),
`render` (the Workflow object), `settings` (where the Argo Server is, as the argo CLI reads it),
`client` (Kubernetes API or Argo Server through Hera), `chain` (a run's Workflows, first to last).
"""

from nlfs.argo.params import DEFAULT_NAMESPACE, TEMPLATES, effective_params, parse_params
from nlfs.argo.render import RUN_ANNOTATION, RUN_LABEL, render, run_label

__all__ = ["DEFAULT_NAMESPACE", "RUN_ANNOTATION", "RUN_LABEL", "TEMPLATES", "effective_params",
           "parse_params", "render", "run_label"]
