"""The record of a run: `journal.jsonl` (`log.Journal`) and its typed event kinds (`events`)."""
