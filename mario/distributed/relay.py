"""The learner's weights into Ray's object store, put there by another process.

Ray ends a driver whose socket to this machine's object store breaks (the raylet killed) at
once, unsaved, and the learner is Ray's driver: so the learner never writes to the store
itself. It sends its packed weights (:func:`~mario.distributed.wire.pack_weights`) to a
:class:`WeightsRelay` inside the call (:data:`mario.distributed.collector.INLINE_BYTES`), and the
relay puts them; a relay that dies with the raylet is only a failed call, which the learner
answers by saving. The relay is a Ray actor without a CPU on the learner's machine, and this
module imports nothing heavy: the relay process only moves bytes.
"""

from __future__ import annotations

from typing import Any


class WeightsRelay:
    """Puts what the learner sends into the object store (one per run)."""

    def put(self, data: bytes) -> list[Any]:
        """``[ref]`` to ``data`` in the object store (in a list: Ray hands a reference inside a
        value over as it is, so the learner gets the reference and not the bytes back)."""
        import ray

        return [ray.put(data)]
