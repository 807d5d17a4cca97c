"""``python -m persrm_gen.cli``: the same as the ``persrm-gen`` command."""

from persrm_gen.cli.app import main

main()
