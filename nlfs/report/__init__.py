"""Reading a run for people: `results` (top losses and progress, constant cost), `text` (terminal
tables), `history` (the whole history in algorithm order), `figures` and `html` (`nlfs report`)."""
