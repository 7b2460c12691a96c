"""Helpers several test modules share: the indexer run as a user runs it, and one dump of the tables."""
