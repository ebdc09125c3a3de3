"""The `vistelse` command.

Each subcommand lives in its own module with a `main(argv) -> int`
function; this file only maps names to modules, so that adding a command
touches one line here.
"""
import importlib
import sys

# name -> (module, one-line help)
COMMANDS = {
    "selfcheck": ("vistelse_tools.selfcheck", "check the payload codecs in Python, MicroPython and JavaScript"),
    "demo": ("vistelse_tools.demo", "run the whole chain on this machine with virtual nodes"),
    "replay": ("vistelse_tools.replay", "drive the node pipeline with a recording, write predictions"),
    "evaluate": ("vistelse_tools.evaluate", "compare predictions with ground truth (WAPE, MAE)"),
    "validate": ("vistelse_tools.validate", "leave-one-scene-out check of the pipeline's parameter choices"),
    "record": ("vistelse_tools.record", "record sensor frames from a node over USB"),
    "simulate": ("vistelse_tools.simulate", "write a simulated recording with ground truth"),
    "privacy-cost": ("vistelse_tools.privacy_cost", "accuracy and time resolution with and without the privacy guarantee"),
    "airtime": ("vistelse_tools.airtime", "time on air, duty cycle, daily budget and battery life"),
    "provision": ("vistelse_tools.provision", "create device keys and register a node"),
    "deploy": ("vistelse_tools.deploy", "compile and copy the firmware to a board with mpremote"),
    "downlink": ("vistelse_gateway.downlink_cli", "send a configuration downlink to a node"),
    "gateway": ("vistelse_gateway.service", "run the gateway service"),
    "documents": ("vistelse_gateway.documents.cli", "a site's DPIA draft, sign text and yearly review (sv/en, HTML/PDF)"),
}


def usage(out):
    out.write("usage: vistelse COMMAND [options]\n\ncommands:\n")
    for name, (_, text) in COMMANDS.items():
        out.write("  %-10s %s\n" % (name, text))
    out.write("\n'vistelse COMMAND --help' tells more.\n")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        usage(sys.stdout)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.stderr.write("vistelse: unknown command %r\n" % name)
        usage(sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            sys.stderr.write("vistelse: command %r is not available in this version\n" % name)
            return 2
        raise
    return module.main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
