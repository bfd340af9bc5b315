from mailroom.admin.cli import main

main()
