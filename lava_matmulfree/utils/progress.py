"""Progress bars for long work (tqdm), safe to use before lava is imported.

tqdm's default lock creates a multiprocessing lock, which fixes multiprocessing's start method; lava
then fails at import (it calls ``set_start_method('fork')``). A thread lock avoids that."""
from __future__ import annotations

import threading

from tqdm import tqdm

tqdm.set_lock(threading.RLock())


def progress(iterable=None, **kwargs):
    return tqdm(iterable, **kwargs)
