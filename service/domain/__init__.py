"""The scoring domain: tokenising, TF-IDF, pair features, stance, references, evidence.

Plain Python and numpy; nothing here reads files or knows about HTTP.
"""
