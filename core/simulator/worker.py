"""``python -m core.simulator.worker``: the raw path's producer process (see ``build._produce_in_process``)."""

import sys

from core.simulator.build import produce_to

if __name__ == "__main__":
    produce_to(sys.stdout.buffer)
