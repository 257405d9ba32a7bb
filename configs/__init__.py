"""The Hydra configs of the ``asr-*`` commands, installed as the package ``asr.configs``.

The folder stays at the repository top level; ``pyproject.toml`` maps the package
``asr.configs`` to it, so that a wheel carries the YAML files (see ``asr.cli.common``).
"""
