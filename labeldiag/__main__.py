from labeldiag.cli import main

main()
