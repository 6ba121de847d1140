"""The UserData ticket of a FileHashCode job (handlers/checking/ticket.py): printable, compact, read back whole."""
from __future__ import annotations

from handlers.checking.ticket import MAX_USER_DATA, Ticket, decode, encode
from tests.samples import BUCKET

JOB = "j0000000000000000000000000000001"


def test_user_data_is_compact_printable_and_falls_back_to_a_key_digest():
    ticket = Ticket(JOB, "VoiceSeparate", BUCKET, "out/声音 a|b.wav", "5f1c-3", "a" * 32, 1_760_000_000)
    text = encode(ticket)
    assert text is not None and len(text) < 160 and all(" " <= ch <= "~" for ch in text)
    assert decode(text) == ticket
    long_key = "out/" + "长" * 400  # 1,200 bytes of UTF-8: 3,600 characters percent-encoded
    text = encode(Ticket(JOB, "VoiceSeparate", BUCKET, long_key, "5f1c-3", "a" * 32, None))
    assert text is not None and len(text) <= MAX_USER_DATA and "|h:" in text
    back = decode(text)
    assert back is not None and back.key == "" and back.names(long_key) and not back.names(long_key + "x")
    assert decode("This is my data.") is None and decode("cvh1|x") is None
