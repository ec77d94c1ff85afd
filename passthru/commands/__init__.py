"""Sub-commands of the ``passthru`` CLI, one module each (registered in ``passthru.cli``)."""
