from vinaforge.cli import main

main()
