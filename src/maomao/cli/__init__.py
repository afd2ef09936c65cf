"""The `mao` command line. Thin: it parses, calls a service, renders.

Global options (``--home``, ``--json``, ``--no-input``) are accepted anywhere on the command
line, so ``mao members --json`` and ``mao --json members`` both work.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from maomao.cli.output import GLOBAL_OPTIONS, GLOBALS, Back, fail, note
from maomao.errors import EXIT_USAGE, MaoError, UsageError

_BY_FLAG = {option.flag: option for option in GLOBAL_OPTIONS}


def split_globals(argv: Sequence[str]) -> list[str]:
    """Take the global options (:data:`GLOBAL_OPTIONS`) out of *argv* into ``GLOBALS``;
    return the rest. This is the only place they are parsed."""
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        flag, equals, value = arg.partition("=")
        option = _BY_FLAG.get(flag if equals else arg)
        if option is None or (equals and not option.metavar):
            rest.append(arg)
        elif not option.metavar:
            setattr(GLOBALS, option.attr, True)
        elif equals:
            setattr(GLOBALS, option.attr, value)
        elif i + 1 >= len(args):
            raise UsageError(f"{option.flag} needs {option.value}")
        else:
            setattr(GLOBALS, option.attr, args[i + 1])
            i += 1
        i += 1
    if os.environ.get("MAO_NO_INPUT"):
        GLOBALS.no_input = True
    return rest


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(list(sys.argv[1:] if argv is None else argv)))


def run(argv: list[str]) -> int:
    """Run one command; return its exit code (never raises, never prints a traceback)."""
    try:
        # each run starts from the defaults: an in-process caller (a test, the launcher)
        # must not inherit the --json or --home of the run before
        GLOBALS.reset()
        args = split_globals(argv)
        if args == ["members"] and _members_served():
            return 0
        return _click(args)
    except MaoError as exc:
        return fail(exc)
    except KeyboardInterrupt:
        return 130
    except Back:  # Esc at a command's first question
        note("cancelled")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        if exc.filename is None:
            return _internal(exc)
        # the machine refused a file (permissions, a full disk, a file where a directory
        # should be): what and where, not a traceback
        return fail(MaoError(f"cannot use {exc.filename}: {exc.strerror or exc}"))
    except Exception as exc:  # a bug of ours: still one line, with a way to see more
        return _internal(exc)


def _click(args: list[str]) -> int:
    """Parse *args* with click and run the command; click's own exits become exit codes."""
    import click

    from maomao.cli.app import app

    try:
        result = app.main(args=args, prog_name="mao", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        sys.stderr.write("aborted\n")
        return 130
    except click.ClickException as exc:
        # usage errors: show the usage line, then our one-line error
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            sys.stderr.write(ctx.get_usage() + "\n")
        fail(UsageError(exc.format_message()))
        return EXIT_USAGE


def _members_served() -> bool:
    """`mao members` answered by the running node before click is even imported: the
    command takes no arguments, so there is nothing to parse (see :mod:`maomao.cli.members`)."""
    from maomao.cli.members import served_by_node
    from maomao.homedir import resolve_home

    return served_by_node(resolve_home(GLOBALS.home))


def _internal(exc: Exception) -> int:
    if os.environ.get("MAO_DEBUG"):
        raise exc
    return fail(MaoError(f"internal error ({type(exc).__name__}: {exc}); MAO_DEBUG=1 shows the traceback"))
