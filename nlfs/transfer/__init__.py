"""After a search: the elimination protocol (METHOD.md 5) and the transfer study (METHOD.md 6).

`protocol` (the YAML file and its grid) · `records` (files stored in the run) · `rank` and
`rounds` (pure transitions) · `aggregate` (the transfer table) · `plan` (one planner call
against a store, the step nlfs-transfer runs) · `runner` (the same, to completion, locally).
"""
