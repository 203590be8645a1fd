"""The soak (tests/soak.py, `make soak`) for one minute: tokens expiring every
30 s, random faults on the token and send endpoints, no lost or duplicated
send, flat memory."""

import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("WX_SRCDIR", "."), "tests"))

import soak     # noqa: E402

soak.main(60)
