"""python -m localcloud demo | run EVENT_FILE | serve [--port N] [--cos-port N] | samples | soak [--callbacks N]"""
import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run every sample event against a local COS emulator")
    run = commands.add_parser("run", help="run one event file through index.main_handler, with the "
                                          "environment as it is (COS_ENDPOINT unset: real COS)")
    run.add_argument("event", help="path to an event JSON file, e.g. events/function-url-task-xml.json")
    commands.add_parser("serve", help="the function behind a local Function URL, with a seeded COS emulator",
                        add_help=False)
    commands.add_parser("samples", help="rebuild events/*.json from tests/fixtures and events/objects")
    commands.add_parser("soak", help="many callbacks with random faults and duplicate deliveries",
                        add_help=False)
    args, rest = parser.parse_known_args()
    if args.command == "soak":
        from localcloud.soak import main as soak
        return soak(rest)
    if args.command == "serve":
        from localcloud.serve import main as serve
        return serve(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "demo":
        from localcloud.demo import main as demo
        return demo()
    if args.command == "samples":
        from localcloud.samples import build_events
        build_events()
        return 0
    from localcloud.runner import run_file
    return run_file(args.event)


if __name__ == "__main__":
    sys.exit(main())
