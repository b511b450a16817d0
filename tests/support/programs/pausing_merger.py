"""A merge that stops at a named point, so a test can SIGKILL it there.

argv: directory, point ("before-replace", "after-replace" or "during-delete"), signal file (written
when paused). The file operations it makes are wrapped in this process only: the production code
has no hook for it.
"""

import os
import sys
import time

import aura.metrics
from aura.metrics import archive

directory, point, signal_file = sys.argv[1:4]
real_replace, real_unlink = os.replace, os.unlink
replaced = []


def pause():
    with open(signal_file, "w") as f:
        f.write(point)
    time.sleep(60)


def replace(src, dst, *args, **kwargs):
    if point == "before-replace" and dst.endswith(archive.ARCHIVE_NAME):
        pause()
    real_replace(src, dst, *args, **kwargs)
    if dst.endswith(archive.ARCHIVE_NAME):
        replaced.append(dst)
        if point == "after-replace":
            pause()


def unlink(path, *args, **kwargs):
    real_unlink(path, *args, **kwargs)
    if replaced and path.endswith(".db"):
        replaced.append(path)
        if point == "during-delete" and len(replaced) == 3:  # the first worker's two files are gone
            pause()


os.replace, os.unlink = replace, unlink
aura.metrics.merge_all_dead(directory, [], check_pids=False)
