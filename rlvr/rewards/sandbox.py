"""Moved to rlvr.sandbox (its own package now that the multi-turn python tool uses it too): this name is the
same module object as rlvr.sandbox.process, so older imports and monkeypatches keep working."""

import sys

from rlvr.sandbox import process as _process

sys.modules[__name__] = _process
