"""Uploaded files: storage, the one limits set and its guarded parsers, media sniffing/rendering, budgeted file work."""
