"""Errors the toolkit reports to users as one clear line (no traceback)."""


class AsrError(Exception):
    """A user-facing error: the CLI prints ``str(err)`` on one line and exits 1.

    The message names the file, utterance or config key at fault and what is wrong.
    """
