"""Synthetic shopper texts for speed benchmarks: unique, seeded, English and Chinese.

Speed depends on how many word pieces a text has, so these are shaped like the
labelled set (one or two sentences, 20 to 40 word pieces, a fifth in
Chinese). Every text is different, so no cache of repeated texts can flatter
a measurement; their matches mean nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

EN_OPENERS = [
    "On weekends I",
    "After work I usually",
    "My ideal Sunday is when I",
    "Most evenings I",
    "When I travel I",
    "On holiday I always",
    "With friends I like to",
    "Alone I tend to",
]
EN_ACTIVITIES = [
    "hike up to a mountain hut",
    "read a novel in a quiet cafe",
    "go dancing until late",
    "cook a slow dinner for my family",
    "sail along the coast",
    "visit a modern art gallery",
    "practise calligraphy",
    "run along the river at dawn",
    "try on vintage jackets",
    "sing karaoke with my colleagues",
    "brew oolong and write in my journal",
    "shop for a sharp tailored suit",
    "watch old Shanghai films",
    "tend my balcony garden",
]
EN_TASTES = [
    "and I love the smell of rain on stone",
    "and I wear mostly black and grey",
    "and sweet fruity perfumes make me happy",
    "and I collect silk scarves",
    "and I can't resist a good leather bag",
    "and I prefer clean, fresh scents",
    "and bright colours suit my mood",
    "and I keep my style simple and practical",
    "and a little luxury at the end of the week feels right",
]
ZH_OPENERS = [
    "周末我喜欢",
    "下班以后我常常",
    "假期里我总是",
    "和朋友在一起时我爱",
    "一个人的时候我会",
]
ZH_ACTIVITIES = [
    "去山里徒步",
    "在安静的咖啡馆看书",
    "去跳舞到很晚",
    "给家人慢慢做一顿饭",
    "去海边航行",
    "逛现代美术馆",
    "练书法",
    "清晨沿着江边跑步",
    "试穿复古外套",
    "和同事去唱卡拉OK",
    "泡一壶乌龙写日记",
    "看老上海电影",
    "打理阳台上的花草",
]
ZH_TASTES = [
    "，也喜欢雨后石板路的味道",
    "，衣服大多是黑色和灰色",
    "，甜甜的果香让我开心",
    "，收藏丝巾",
    "，偏爱干净清新的香气",
    "，鲜艳的颜色让我心情好",
    "，风格简单实用",
]


def shopper_texts(count: int, *, seed: int = 6, chinese_share: float = 0.2) -> Iterator[str]:
    """``count`` different shopper texts, the same ones for the same seed."""
    rng = random.Random(seed)
    for number in range(count):
        # The number makes each text unique, the way shoppers' details differ.
        if rng.random() < chinese_share:
            yield (
                f"{rng.choice(ZH_OPENERS)}{rng.choice(ZH_ACTIVITIES)}{rng.choice(ZH_TASTES)}。"
                f"我今年{18 + number % 50}岁，住在第{number}号。"
            )
        else:
            yield (
                f"{rng.choice(EN_OPENERS)} {rng.choice(EN_ACTIVITIES)}, "
                f"{rng.choice(EN_TASTES)}. I'm {18 + number % 50} and live at number {number}."
            )
