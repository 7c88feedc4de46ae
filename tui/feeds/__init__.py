"""Feed adapters: a live session (live.py) and a recording replay (replay.py)."""
