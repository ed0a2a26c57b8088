"""Planted duplicates and look-alikes with a known truth (``--duplicates RATE``).

A share of people are entered twice, the way front offices do it (a re-typed or misspelt name,
accents dropped or written out, first and last name swapped, a nickname, a work e-mail, a phone
written another way, day and month of the birth date swapped, fields left out), and as many
pairs are other people who look alike (a family sharing an e-mail, a phone and an address;
namesakes born on other days; a father and son of one name). Every planted profile is a new
customer; the truth names each pair and whether it is one person.

Deterministic: the same seed and rate plant the same people; a seed of its own (derived from the
data's seed) leaves the rest of the generated data as it was.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import phonenumbers

# per nationality: first names (with the nicknames people give at the desk), last names, an
# e-mail domain, a city; the variety of a real guest list, wider than the base generator's
_FIRSTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "GB": (
        ("William", ("Bill", "Will")),
        ("Elizabeth", ("Liz", "Beth")),
        ("Robert", ("Bob", "Rob")),
        ("Margaret", ("Maggie", "Peggy")),
        ("Edward", ("Ted", "Ed")),
        ("Catherine", ("Kate", "Cathy")),
        ("Jonathan", ("Jon",)),
        ("Victoria", ("Vicky",)),
        ("Alexander", ("Alex",)),
        ("Rebecca", ("Becky",)),
        ("Harriet", ("Hattie",)),
        ("Nicholas", ("Nick",)),
    ),
    "US": (
        ("Richard", ("Rick", "Dick")),
        ("Jennifer", ("Jen", "Jenny")),
        ("Michael", ("Mike",)),
        ("Patricia", ("Pat", "Trish")),
        ("Christopher", ("Chris",)),
        ("Samantha", ("Sam",)),
        ("Daniel", ("Dan", "Danny")),
        ("Kimberly", ("Kim",)),
        ("Joseph", ("Joe",)),
        ("Deborah", ("Debbie",)),
        ("Anthony", ("Tony",)),
        ("Madison", ("Maddie",)),
    ),
    "DE": (
        ("Johannes", ("Hans",)),
        ("Katharina", ("Kathi",)),
        ("Maximilian", ("Max",)),
        ("Franziska", ("Franzi",)),
        ("Wolfgang", ("Wolf",)),
        ("Susanne", ("Susi",)),
        ("Jürgen", ()),
        ("Bärbel", ()),
        ("Matthias", ("Matze",)),
        ("Gertrud", ("Trude",)),
        ("Sebastian", ("Basti",)),
        ("Jörg", ()),
    ),
    "CZ": (
        ("Jiří", ("Jirka",)),
        ("Tereza", ("Terka",)),
        ("František", ("Franta",)),
        ("Kateřina", ("Katka",)),
        ("Tomáš", ("Tom",)),
        ("Zuzana", ("Zuzka",)),
        ("Václav", ("Vašek",)),
        ("Lucie", ()),
        ("Přemysl", ()),
        ("Markéta", ()),
        ("Ondřej", ("Ondra",)),
        ("Radek", ()),
    ),
    "ES": (
        ("José", ("Pepe",)),
        ("Francisco", ("Paco",)),
        ("Dolores", ("Lola",)),
        ("Concepción", ("Concha",)),
        ("Ignacio", ("Nacho",)),
        ("Guadalupe", ("Lupe",)),
        ("Rosario", ("Charo",)),
        ("Enrique", ("Quique",)),
        ("Begoña", ()),
        ("Íñigo", ()),
        ("Mercedes", ("Merche",)),
        ("Jesús", ("Chuy",)),
    ),
    "GR": (
        ("Γιώργος", ()),
        ("Δημήτρης", ()),
        ("Κωνσταντίνος", ("Κώστας",)),
        ("Αικατερίνη", ("Κατερίνα",)),
        ("Παναγιώτης", ("Πάνος",)),
        ("Βασιλική", ("Βάσω",)),
        ("Ευάγγελος", ("Βαγγέλης",)),
        ("Σοφία", ()),
    ),
    "PL": (
        ("Małgorzata", ("Gosia",)),
        ("Aleksander", ("Olek",)),
        ("Katarzyna", ("Kasia",)),
        ("Wojciech", ("Wojtek",)),
        ("Przemysław", ("Przemek",)),
        ("Agnieszka", ("Aga",)),
        ("Grzegorz", ("Grzesiek",)),
        ("Jadwiga", ("Jadzia",)),
    ),
}
_LASTS: dict[str, tuple[str, ...]] = {
    "GB": (
        "Whitfield",
        "Ashworth",
        "Pemberton",
        "Hargreaves",
        "Featherstone",
        "Oakley",
        "Lockhart",
        "Thornbury",
        "Kingsley",
        "Blackwood",
        "Fairweather",
        "Hollingsworth",
        "Marsh",
        "Pryce",
    ),
    "US": (
        "Anderson",
        "Whitaker",
        "Castellano",
        "McAllister",
        "Donovan",
        "Hendricks",
        "Kowalczyk",
        "Lindqvist",
        "Ramirez",
        "Fitzgerald",
        "Okafor",
        "Sullivan",
        "Brennan",
        "Caldwell",
    ),
    "DE": (
        "Schröder",
        "Bäcker",
        "Krüger",
        "Hoffmann",
        "Köhler",
        "Weißmann",
        "Günther",
        "Fröhlich",
        "Schwarzkopf",
        "Lindemann",
        "Böhm",
        "Strauß",
        "Vogt",
        "Zimmermann",
    ),
    "CZ": (
        "Dvořák",
        "Novotný",
        "Procházka",
        "Kučerová",
        "Veselý",
        "Horáková",
        "Němec",
        "Růžička",
        "Pokorný",
        "Šťastná",
        "Marek",
        "Kříž",
        "Zelenka",
        "Černý",
    ),
    "ES": (
        "Fernández",
        "Rodríguez",
        "Gutiérrez",
        "Sánchez",
        "Domínguez",
        "Muñoz",
        "Jiménez",
        "Álvarez",
        "Iglesias",
        "Ortega",
        "Velázquez",
        "Castaño",
        "Ibáñez",
        "Herrero",
    ),
    "GR": (
        "Παπαδόπουλος",
        "Καραγιάννης",
        "Βλάχος",
        "Αντωνίου",
        "Δημητρίου",
        "Μαυρίδης",
        "Αλεξίου",
        "Σταυρόπουλος",
        "Κωνσταντινίδης",
        "Ζαχαρίου",
    ),
    "PL": (
        "Wiśniewski",
        "Wróblewska",
        "Kamiński",
        "Lewandowska",
        "Zieliński",
        "Szymańska",
        "Woźniak",
        "Kozłowski",
        "Jankowska",
        "Mazur",
        "Krawczyk",
        "Piotrowski",
    ),
}
_WORK_DOMAINS = ("acme-corp.example", "globex.example", "initech.example", "umbrella.example")
_PRIVATE_DOMAINS = ("mail.example", "post.example", "inbox.example")
_OTA = ("guest.booking.example", "m.expedia.example")
# Greek as people write it in Latin letters on a booking form (ELOT 743, simplified)
_GREEK_PAIRS = (
    "ου=ou ευ=ev αυ=av γγ=ng αι=ai ει=ei οι=oi μπ=b ντ=d γκ=g α=a β=v γ=g δ=d ε=e ζ=z η=i "  # noqa: RUF001
    "θ=th ι=i κ=k λ=l μ=m ν=n ξ=x ο=o π=p ρ=r σ=s ς=s τ=t υ=y φ=f χ=ch ψ=ps ω=o"  # noqa: RUF001
)
_GREEK = dict(pair.split("=") for pair in _GREEK_PAIRS.split(" "))

VARIATIONS = (
    "misspelt_name",
    "accents_dropped",
    "swapped_names",
    "nickname",
    "work_email",
    "phone_written_otherwise",
    "birth_date_day_month_swapped",
    "fields_left_out",
    "ota_email",
)
LOOK_ALIKES = ("family", "namesake", "father_and_son")


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    nationality: str
    birth: date
    email: str
    phone: str  # international, e.g. "+44 20 7946 0018"
    document: str
    street: str


def plant(
    customers: dict[str, dict[str, Any]],
    template: dict[str, Any],
    rate: float,
    seed: int,
    new_id: Any,
) -> list[dict[str, Any]]:
    """Add round(rate × customers) duplicate pairs and as many look-alike pairs; the truth."""
    if rate <= 0:
        return []
    rng = random.Random(seed)
    count = max(1, round(rate * len(customers)))
    truth: list[dict[str, Any]] = []
    for index in range(count):
        original = _person(rng, f"d{index}")
        a = _profile(template, original, new_id(), rng)
        variations = _variations(rng, original)
        b = _profile(template, original, new_id(), rng)
        _apply(b, original, variations, rng)
        customers[a["Id"]], customers[b["Id"]] = a, b
        truth.append(
            {
                "a": a["Id"],
                "b": b["Id"],
                "same": True,
                "kind": "duplicate",
                "variations": variations,
            }
        )
    for index in range(count):
        kind = LOOK_ALIKES[index % len(LOOK_ALIKES)]
        one = _person(rng, f"l{index}")
        other = _look_alike(kind, one, rng, f"o{index}")
        a = _profile(template, one, new_id(), rng)
        b = _profile(template, other, new_id(), rng)
        customers[a["Id"]], customers[b["Id"]] = a, b
        truth.append({"a": a["Id"], "b": b["Id"], "same": False, "kind": kind, "variations": []})
    return truth


def _person(rng: random.Random, tag: str, nationality: str | None = None) -> Person:
    nationality = nationality or rng.choice(sorted(_FIRSTS))
    first = rng.choice(_FIRSTS[nationality])[0]
    last = rng.choice(_LASTS[nationality])
    local = f"{_ascii(first).lower()}.{_ascii(last).lower()}{rng.randrange(10, 99)}"
    return Person(
        first=first,
        last=last,
        nationality=nationality,
        birth=date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 65)),
        email=f"{local}.{tag}@{rng.choice(_PRIVATE_DOMAINS)}",
        phone=_phone(nationality, rng),
        document=f"P{rng.randrange(10**8):08d}",
        street=f"{rng.randrange(1, 300)} {rng.choice(('Mill', 'Park', 'Church', 'Lake'))} Road",
    )


def _look_alike(kind: str, one: Person, rng: random.Random, tag: str) -> Person:
    other = _person(rng, tag, one.nationality)
    if kind == "family":  # spouse or child: one last name, the family's e-mail, phone, address
        first = rng.choice([f for f, _ in _FIRSTS[one.nationality] if f != one.first])
        shared = rng.choice(("email", "phone", "both"))
        return Person(
            first=first,
            last=one.last,
            nationality=one.nationality,
            birth=one.birth + timedelta(days=rng.choice((-1, 1)) * rng.randrange(400, 12000)),
            email=one.email if shared in ("email", "both") else other.email,
            phone=one.phone if shared in ("phone", "both") else other.phone,
            document=other.document,
            street=one.street,
        )
    if kind == "namesake":  # another person of the same name, born another day
        return Person(
            one.first,
            one.last,
            one.nationality,
            one.birth + timedelta(days=rng.choice((-1, 1)) * rng.randrange(30, 9000)),
            other.email,
            other.phone,
            other.document,
            other.street,
        )
    # father and son (or mother and daughter) of one name, one home, one landline
    return Person(
        one.first,
        one.last,
        one.nationality,
        one.birth + timedelta(days=rng.randrange(20 * 365, 40 * 365)),
        other.email if rng.random() < 0.7 else one.email,
        one.phone,
        other.document,
        one.street,
    )


def _profile(
    template: dict[str, Any], person: Person, id_: str, rng: random.Random
) -> dict[str, Any]:
    profile = dict(template)
    profile.update(
        Id=id_,
        Number=None,
        FirstName=person.first,
        LastName=person.last,
        NationalityCode=person.nationality if rng.random() < 0.8 else None,
        BirthDate=person.birth.isoformat(),
        Email=person.email,
        HasOtaEmail=False,
        Phone=person.phone,
        Classifications=[],
        Options=[],
        CompanyId=None,
        MergeTargetId=None,
        ActivityState="Active",
        IsActive=True,
    )
    return profile


def _variations(rng: random.Random, person: Person) -> list[str]:
    chosen = rng.sample(VARIATIONS, k=rng.choice((1, 2, 2, 3)))
    if "birth_date_day_month_swapped" in chosen and (
        person.birth.day > 12 or person.birth.day == person.birth.month
    ):
        chosen.remove("birth_date_day_month_swapped")
        chosen.append("misspelt_name")
    return sorted(set(chosen))


def _apply(
    profile: dict[str, Any], person: Person, variations: list[str], rng: random.Random
) -> None:
    for variation in variations:
        if variation == "misspelt_name":
            field = rng.choice(("FirstName", "LastName"))
            profile[field] = _typo(profile[field], rng)
        elif variation == "accents_dropped":
            profile["FirstName"] = _ascii(profile["FirstName"])
            profile["LastName"] = _ascii(profile["LastName"])
        elif variation == "swapped_names":
            profile["FirstName"], profile["LastName"] = profile["LastName"], profile["FirstName"]
        elif variation == "nickname":
            nicknames = dict(_FIRSTS[person.nationality]).get(person.first, ())
            profile["FirstName"] = rng.choice(nicknames) if nicknames else person.first[0] + "."
        elif variation == "work_email":
            profile["Email"] = (
                f"{_ascii(person.first)[0].lower()}{_ascii(person.last).lower()}@"
                f"{rng.choice(_WORK_DOMAINS)}"
            )
        elif variation == "phone_written_otherwise":
            profile["Phone"] = _written_otherwise(person.phone, rng)
        elif variation == "birth_date_day_month_swapped":
            profile["BirthDate"] = date(
                person.birth.year, person.birth.day, person.birth.month
            ).isoformat()
        elif variation == "fields_left_out":
            for field in rng.sample(("Email", "Phone", "BirthDate"), k=rng.choice((1, 2))):
                profile[field] = None
        elif variation == "ota_email":
            profile["Email"] = f"{rng.getrandbits(40):x}@{rng.choice(_OTA)}"
            profile["HasOtaEmail"] = True


def _typo(text: str, rng: random.Random) -> str:
    if len(text) < 3:
        return text + text[-1]
    at = rng.randrange(1, len(text) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # a letter doubled or left out
        return text[:at] + text[at + 1 :]
    if kind == 1:  # two letters swapped
        return text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    near = "eaiouy" if text[at].lower() in "aeiouy" else "nmrtsl"
    return text[:at] + rng.choice(near) + text[at + 1 :]


def _ascii(text: str) -> str:
    text = text.replace("ß", "ss").replace("ł", "l").replace("Ł", "L").replace("ø", "o")
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in decomposed if not unicodedata.combining(c))
    lowered = text.lower()
    for greek, latin in _GREEK.items():
        lowered = lowered.replace(greek, latin)
    return lowered.capitalize() if lowered != text.lower() else text


def _phone(nationality: str, rng: random.Random) -> str:
    """A valid number of the nationality's plan, written internationally."""
    example = phonenumbers.example_number_for_type(
        nationality, phonenumbers.PhoneNumberType.MOBILE
    ) or phonenumbers.example_number(nationality)
    if example is None:
        raise ValueError(f"no example number for {nationality}")
    national = str(example.national_number)
    for _ in range(50):
        digits = national[:3] + "".join(str(rng.randrange(10)) for _ in national[3:])
        number = phonenumbers.parse("+" + str(example.country_code) + digits)
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _written_otherwise(international: str, rng: random.Random) -> str:
    number = phonenumbers.parse(international)
    style = rng.randrange(4)
    if style == 0:  # 00 instead of +, no spaces
        return "00" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    if style == 1:  # dashes
        return international.replace(" ", "-")
    if style == 2:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
