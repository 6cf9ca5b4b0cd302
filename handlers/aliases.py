"""Chinese command words: a first word typed in Chinese names an existing subcommand.

`@supportbot 开单 S2 结账接口报 500` is `open S2 …`, `套餐` is `plan`, `帮助` is `help`. The
table is small on purpose: a word per everyday task, on every platform (the router applies
it, not an adapter), listed in help so that nobody has to guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

# root -> Chinese word -> the subcommand it stands for (its first word or words)
ALIASES: Mapping[str, Mapping[str, str]] = {
    "support": {
        "帮助": "help",
        "开单": "open",
        "套餐": "plan",
        "工单": "cases",
        "状态": "sla",
        "关闭": "close",
    },
    "tam": {
        "帮助": "help",
        "受理": "ack",
        "批准": "approve",
        "拒绝": "reject",
        "解决": "resolve",
    },
}


def expand(root: str, words: list[str]) -> list[str]:
    """The words with a Chinese first word replaced by the subcommand it stands for."""
    if not words:
        return words
    english = ALIASES.get(root, {}).get(words[0])
    if english is None:
        return words
    return [*english.split(), *words[1:]]


def listing(root: str, sep: str, item: Callable[[str, str], str]) -> str:
    """`开单 (open), 套餐 (plan), …` for help, each pair written by `item(word, command)`;
    '' for a root without Chinese words."""
    return sep.join(item(zh, en) for zh, en in ALIASES.get(root, {}).items())
