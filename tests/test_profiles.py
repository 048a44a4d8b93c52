"""Profile loading: the shipped roster is valid, and every kind of mistake is reported precisely."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from matcher.errors import ProfileError
from matcher.profiles import load_profiles, parse_profile

from .conftest import SAMPLE_PROFILES, TINY_ROSTER, write_roster

GOOD = textwrap.dedent(TINY_ROSTER["ocean.yaml"])


def test_sample_roster_has_seven_distinct_bilingual_celebrities() -> None:
    roster = load_profiles(SAMPLE_PROFILES)
    assert len(roster) == 7
    assert len({p.id for p in roster}) == 7
    for profile in roster:
        assert profile.name_zh and profile.name_zh != profile.name
        assert {"style", "values", "lifestyle", "scent", "audience"} <= set(profile.facets)
        assert all(len(text) > 40 for text in profile.facets.values())


def test_loads_fields_and_defaults(roster_dir: Path) -> None:
    roster = load_profiles(roster_dir)
    ocean = roster.get("ocean")
    assert ocean.name_zh == "海星"
    assert list(ocean.facets) == ["style", "lifestyle", "scent"]
    assert ocean.active is True and ocean.quota is None and ocean.image is None
    assert [p.id for p in roster] == ["library", "ocean", "stage"]  # file-name order


def problems_for(body: str | bytes) -> list[str]:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    profile, problems = parse_profile("x.yaml", raw)
    assert profile is None
    return [str(p) for p in problems]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(GOOD.replace("name: Ocean Star\n", ""), "x.yaml: name: is required", id="missing-field"),
        pytest.param(GOOD + "colour: blue\n", "x.yaml:10: colour: is not a known field", id="unknown-key"),
        pytest.param(GOOD.replace("tags: [sea, sport]", "tags: sea"), "x.yaml:9: tags: Input should be a valid list", id="wrong-type"),
        pytest.param(GOOD.replace("scent: sea salt and driftwood", "scent: '   '"), "x.yaml:8: facets.scent: is empty", id="empty-facet"),
        pytest.param(GOOD.replace("id: ocean", "id: Ocean_Star"), "x.yaml:1: id: must be kebab-case", id="bad-id"),
        pytest.param(GOOD.replace("  style:", "  Style Notes:"), "x.yaml:6: facets.Style Notes: facet names must be", id="bad-facet-name"),
        pytest.param(GOOD + "name: Again\n", "x.yaml:10: name: appears twice", id="duplicate-key"),
        pytest.param(GOOD + "quota: -3\n", "x.yaml:10: quota: Input should be greater than or equal to 0", id="negative-quota"),
        pytest.param("id: a\n  b: [\n", "x.yaml:2: (file): not valid YAML", id="yaml-syntax"),
        pytest.param("- just\n- a list\n", "x.yaml: (file): must be a mapping", id="not-a-mapping"),
        pytest.param(GOOD.encode("utf-8").replace("海星".encode(), b"\xb5\xa3\xd0\xc7"), "x.yaml:3: (file): not valid UTF-8", id="gbk-encoded"),
    ],
)  # fmt: skip
def test_each_mistake_is_reported_with_file_line_and_field(
    body: str | bytes, expected: str
) -> None:
    problems = problems_for(body)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_across_files_is_reported_at_once(tmp_path: Path) -> None:
    folder = write_roster(
        tmp_path,
        {
            "a.yaml": GOOD,
            "b.yaml": GOOD,  # duplicate id "ocean"
            "c.yaml": GOOD.replace("id: ocean", "id: other").replace(
                "tagline: Salt and waves.\n", ""
            ),
            "d.yaml": GOOD.replace("id: ocean", "id: fourth") + "extra: 1\n",
        },
    )
    with pytest.raises(ProfileError) as caught:
        load_profiles(folder)
    found = [str(p) for p in caught.value.problems]
    assert any(p.startswith("b.yaml:1: id: the same id as a.yaml") for p in found)
    assert any(p.startswith("c.yaml: tagline: is required") for p in found)
    assert any(p.startswith("d.yaml:10: extra: is not a known field") for p in found)
    assert len(found) == 3


def test_nothing_is_half_loaded(tmp_path: Path) -> None:
    folder = write_roster(tmp_path, {"good.yaml": GOOD, "bad.yaml": "id: [\n"})
    with pytest.raises(ProfileError):
        load_profiles(folder)


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(lambda p: None, id="missing-folder"),
        pytest.param(lambda p: p.mkdir(), id="empty-folder"),
        pytest.param(lambda p: write_roster(p, {"a.yaml": GOOD.replace("tags:", "active: false\ntags:")}), id="none-active"),
    ],
)  # fmt: skip
def test_unusable_folder(tmp_path: Path, setup: object) -> None:
    folder = tmp_path / "roster"
    setup(folder)  # type: ignore[operator]
    with pytest.raises(ProfileError) as caught:
        load_profiles(folder)
    assert len(caught.value.problems) == 1


def test_inactive_profiles_are_loaded_but_not_active(roster_dir: Path) -> None:
    body = (roster_dir / "stage.yaml").read_text(encoding="utf-8")
    (roster_dir / "stage.yaml").write_text(body + "active: false\n", encoding="utf-8")
    roster = load_profiles(roster_dir)
    assert len(roster) == 3
    assert [p.id for p in roster.active] == ["library", "ocean"]


def test_content_hash_changes_only_with_embedded_content(roster_dir: Path) -> None:
    ocean = load_profiles(roster_dir).get("ocean")
    renamed = ocean.model_copy(update={"name": "Renamed", "quota": 10})
    edited = ocean.model_copy(update={"facets": {**ocean.facets, "scent": "pine needles"}})
    assert renamed.content_hash() == ocean.content_hash()
    assert edited.content_hash() != ocean.content_hash()


#: What a file that is not a profile might hold; none of it may reach a message.
PLANTED_SECRET = "hunter2-PLANTED-9f3a"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(f"password: {PLANTED_SECRET}\napi_key: {PLANTED_SECRET}\n", id="settings-file"),
        pytest.param(f"id: [{PLANTED_SECRET}]\nname: {{a: {PLANTED_SECRET}}}\n", id="wrong-types"),
        pytest.param(GOOD + f"{PLANTED_SECRET * 4}: 1\n", id="long-key"),
        pytest.param(f"id: \"{PLANTED_SECRET}\n  x: '{PLANTED_SECRET}\n", id="broken-yaml"),
        pytest.param(GOOD.replace("id: ocean", f"id: {PLANTED_SECRET}"), id="bad-id-pattern"),
        pytest.param(GOOD + f"facets_zh:\n  nosuch: {PLANTED_SECRET}\n", id="unknown-facet"),
    ],
)  # fmt: skip
def test_problems_never_repeat_a_files_values(body: str) -> None:
    problems = problems_for(body)
    assert problems
    assert not any(PLANTED_SECRET.lower() in p.lower() for p in problems), problems


def test_corrections_problems_never_repeat_the_line(roster_dir: Path) -> None:
    (roster_dir / "corrections.jsonl").write_text(
        f'{{"right": "{PLANTED_SECRET}", "text": "tea"}}\n'
        f'{{"right": ["{PLANTED_SECRET}"], "text": "tea"}}\n' + "[" * 100_000 + "\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError) as caught:
        load_profiles(roster_dir)
    found = [str(p) for p in caught.value.problems]
    assert [p.split(": ")[0] for p in found] == [
        "corrections.jsonl:1",
        "corrections.jsonl:2",
        "corrections.jsonl:3",
    ]
    assert not any(PLANTED_SECRET in p for p in found), found
