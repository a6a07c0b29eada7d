from fmnist.messages import first_line


def test_first_line_of_an_error() -> None:
    assert first_line(ValueError("\n  bad shape (3, 4)\nmore detail")) == "bad shape (3, 4)"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("x" * 500), limit=10) == "x" * 10
