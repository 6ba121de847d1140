"""What a robot's renderer would make of a message: the checks that text from outside shows as text."""
from __future__ import annotations

from handlers.operations.notifications.message import AffectedObject, Notice

# A key may hold anything but control characters: each markdown construct the robots render.
EVIL_KEY = ('out/x` [open](https://evil.example/phish) ![i](https://evil.example/p.png) <https://evil.example/> '
            '<font color="warning">**urgent**</font> <@all> &lt;b&gt; _em_ ~~s~~ | # \\`.mp3')
EVIL_MESSAGE = ("voice model crashed\n# Heading\n> quote\n- item\n1. first\n\n[re-run](https://evil.example/)"
                "\r\n```\ncode\n``` <@all>\u2028tail")
OUR_PREFIXES = ("### ", "> ", "- ", "Request id: ")


def commonmark_text(markdown_text: str) -> str:
    """What a CommonMark renderer shows of text holding no markup: backslash escapes and entities resolved."""
    import html
    import re
    return html.unescape(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown_text))


def live_markup(markdown_text: str) -> str:
    """The characters of `markdown_text` that a renderer could take as markup: what is left once
    backslash escapes (CommonMark's) and character references are taken out, and of that only the
    characters that open a link, an image, a code span, HTML, an autolink, a mention, emphasis,
    strikethrough or a table cell."""
    import re
    plain = re.sub(r"\\[!-/:-@\[-`{-~]|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]*);", "", markdown_text)
    plain = re.sub(r"(?<=[^\W_])_+(?=[^\W_])", "", plain)  # inside a word CommonMark takes no _ for emphasis
    return "".join(c for c in plain if c in "[]`<*_~|")


def assert_text_only(content: str, expected_lines: int) -> None:
    lines = content.split("\n")
    assert len(lines) == expected_lines, lines  # nothing from a key or CI started a line (a block) of its own
    for line in lines:
        assert line == "" or line.startswith(OUR_PREFIXES), line
        body = line.split(" ", 1)[1] if line.startswith(OUR_PREFIXES[:3]) else line
        assert live_markup(body.replace("**mismatch**", "").replace("**missing**", "")) == "", line
    assert "](" not in content and "<" not in content


def evil_notice(objects: int = 1, reason: str = "the content's MD5 is x\n# not a heading [x](https://evil.example/)",
                outcome: str = "failed") -> Notice:
    shown = tuple(AffectedObject(f"{EVIL_KEY}{i}", "mismatch", reason, "quarantine/" + EVIL_KEY) for i in range(objects))
    return Notice(job_id="j1`[x](https://evil.example/)", job_type="Voice\nSeparate", state="Success\n# h",
                  outcome=outcome, bucket="b-1<@all>", region="ap-x\r\n> q", code="E\n1", message=EVIL_MESSAGE,
                  objects=shown, counts={"mismatch": objects}, request_id="r\n1")
