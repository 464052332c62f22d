from rrr.cli import main

main()
