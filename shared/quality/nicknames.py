"""Given names and the short forms people give at a desk (folded: lower case, ASCII).

A small, general list (English, German, Dutch, Romance, Slavic, Greek in Latin letters): a name
and its nicknames form one group; two first names in one group are a "nickname" match. Names
not listed still match through the similarity and initial levels.
"""

from __future__ import annotations

_GROUPS = """
william bill billy will willy liam
robert bob bobby rob robbie bert
richard rick ricky dick rich
elizabeth liz lizzie beth betty eliza elisabeth lisa elsbeth
margaret maggie meg peggy greta margarete margit
catherine kate katie cathy kathy katharina kathi katrin katarzyna kasia katerina katka katerini aikaterini
edward ed eddie ted teddy
james jim jimmy jamie
john jack johnny jon jonathan johannes hans jan janek
michael mike mikey mick michal
thomas tom tommy tomas
joseph joe joey giuseppe beppe peppe jose pepe
francis frank frankie francisco paco franz franziska franzi francesco franco frantisek franta
alexander alex alec sasha aleksander olek alejandro alessandro sandro
nicholas nick nicky nicolas nikolaus klaus nikos nikolaos
christopher chris kit christoph
anthony tony antonio toni anton
daniel dan danny dani
samuel sam sammy samantha
patricia pat patty trish tricia
jennifer jen jenny
deborah debbie deb
rebecca becky becca
victoria vicky vicki tori
kimberly kim
matthew matt matthias mathias matze
sebastian basti seb
maximilian max maxi
wolfgang wolf
susanne susi susan sue suzanne
dolores lola
concepcion concha conchita
ignacio nacho
guadalupe lupe
rosario charo
enrique quique
mercedes merche
jesus chuy
konstantinos kostas costas dinos
panagiotis panos takis
evangelos vangelis vaggelis
vasiliki vaso vicky
georgios giorgos george yorgos jorge georg
dimitrios dimitris jim
malgorzata gosia
wojciech wojtek
przemyslaw przemek
grzegorz grzesiek greg gregory
jadwiga jadzia
jiri jirka george
tereza terka teresa
zuzana zuzka susanna
vaclav vasek
ondrej ondra andrew andy andreas
peter pete petr pedro pierre piotr
benjamin ben benny
"""


def _index() -> dict[str, frozenset[int]]:
    groups: dict[str, set[int]] = {}
    for number, line in enumerate(_GROUPS.strip().splitlines()):
        for name in line.split():
            groups.setdefault(name, set()).add(number)
    return {name: frozenset(found) for name, found in groups.items()}


GROUPS = _index()


def same_group(a: str, b: str) -> bool:
    """Whether two folded first names are one name and its nickname (or two of its nicknames)."""
    found = GROUPS.get(a)
    return bool(found and found & GROUPS.get(b, frozenset()))
