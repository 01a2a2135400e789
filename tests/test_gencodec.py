"""The generated fast codec is what `python -m ninep.gencodec` writes from the declarations."""

from __future__ import annotations

from ninep import gencodec


def test_the_generated_codec_is_current() -> None:
    """Fails when a message or payload changed and the codec was not generated again."""
    assert gencodec.TARGET.read_text() == gencodec.source(), (
        f"{gencodec.TARGET} is stale: run {gencodec.COMMAND}"
    )
