"""`python -m common.ops.cli`, the same as the `aircast` console script."""

from common.ops.cli import main

main()
