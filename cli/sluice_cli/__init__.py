"""The ``sluice`` command line: one entry point over the data plane (``sluice_runtime``) and
the control plane (``sluice_operator``). It sits above both so that neither package carries
the other's commands; ``make lint`` enforces the layering with import-linter."""
