"""Command lines of the RSS scripts: `BINARY [COUNT] [-- EXTRA SERVER ARGS...]`."""

import sys


def parse(argv, usage, default_count):
    """Returns (binary, count, extra server args) from `argv` (without the program name).

    COUNT must be a positive integer: the scripts divide by it (per connection) or take a
    median over it (per run). A missing BINARY, a COUNT that is not a number or is < 1, or
    more than two arguments before `--` exit with `usage` and the reason.
    """
    args, extra = list(argv), []
    if "--" in args:
        at = args.index("--")
        args, extra = args[:at], args[at + 1:]

    def fail(reason):
        sys.exit(f"{reason}\nusage: {usage}")

    if not args or len(args) > 2:
        fail("expected BINARY and at most one COUNT before `--`")
    count = default_count
    if len(args) == 2:
        try:
            count = int(args[1])
        except ValueError:
            fail(f"COUNT must be a whole number, not {args[1]!r}")
    if count < 1:
        fail(f"COUNT must be at least 1, not {count}")
    return args[0], count, extra
