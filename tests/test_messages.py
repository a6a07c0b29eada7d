from fmnist.messages import first_line, short


def test_first_line_of_an_error() -> None:
    assert first_line(ValueError("\n  bad shape (3, 4)\nmore detail")) == "bad shape (3, 4)"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("x" * 500), limit=10) == "x" * 10


def test_short_quotes_text_from_a_file_in_one_short_line() -> None:
    assert short("../../evil.py") == "'../../evil.py'"
    assert short("a" * 100) == "'" + "a" * 40 + "…'"
    for hostile in ("line\n" * 100_000, "\x00" * 1000, "\U0001f600" * 100, "'\"" * 100):
        shown = short(hostile)
        assert "\n" not in shown and "\x00" not in shown and len(shown) <= 43, shown
        assert shown.endswith("…'") or shown.endswith('…"'), shown
