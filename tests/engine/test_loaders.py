"""CSV and MovieLens loaders on tiny hand-written files, the registry and the downloader."""

from __future__ import annotations

import io
import sys
import types
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data import download, registry
from engine.data.csv_loader import load_csv_dataset
from engine.data.download import DownloadError, ensure_dataset
from engine.data.movielens import LAYOUT_FILES, _age_band, load_movielens
from engine.data.registry import DATASETS, list_datasets, load_dataset
from engine.data.schema import (
    CATEGORIES,
    INTERACTION_COLUMNS,
    ITEM,
    RATING,
    TEXT,
    TIMESTAMP,
    TITLE,
    USER,
    DataValidationError,
)


def put(folder: Path, files: dict[str, str | bytes], *, encoding: str = "utf-8", newline: str = "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.replace("\n", newline).encode(encoding)
        (folder / name).write_bytes(data)
    return folder


# ----------------------------------------------------------------------------- csv


def test_csv_with_column_mapping_and_extras(tmp_path: Path) -> None:
    folder = put(
        tmp_path,
        {
            "interactions.csv": "uid,movie,score,when,device\nu1,m1,4.5,100,tv\nu2,m1,2,200,phone\nu2,m2,3,300,tv\n",
            "items.csv": "movie,name,genres,description,provider,price\n"
            'm1,Alpha,Drama|Comedy,"A long, quoted text",acme,9.5\n'
            "m2,Beta,,,indie,3\nm3,Gamma,Drama,,acme,1\n",
            "users.csv": "uid,gender,age_band,zip\nu1,F,18-24,02134\nu2,M,25-34,94043\n",
        },
    )
    mapping = {
        "uid": USER,
        "movie": ITEM,
        "score": RATING,
        "when": TIMESTAMP,
        "name": TITLE,
        "genres": CATEGORIES,
        "description": TEXT,
    }
    data = load_csv_dataset(folder, columns=mapping)
    assert data.name == tmp_path.name
    inter = data.interactions
    assert tuple(inter.columns) == INTERACTION_COLUMNS
    assert inter[USER].tolist() == ["u1", "u2", "u2"]
    assert inter[ITEM].tolist() == ["m1", "m1", "m2"]
    assert inter[RATING].tolist() == [4.5, 2.0, 3.0]
    assert inter[TIMESTAMP].tolist() == [100, 200, 300]
    assert inter[RATING].dtype == np.float64 and inter[TIMESTAMP].dtype == np.int64
    assert data.rating_scale == (2.0, 4.5)  # inferred from the file
    items = data.items
    assert list(items.columns) == [ITEM, TITLE, CATEGORIES, TEXT, "provider", "price"]
    assert items[CATEGORIES].tolist() == [("Drama", "Comedy"), (), ("Drama",)]
    assert items[TEXT].tolist() == ["A long, quoted text", "", ""]
    assert items["price"].tolist() == [9.5, 3.0, 1.0]
    assert data.users is not None
    assert data.users.to_dict("records") == [
        {USER: "u1", "gender": "F", "age_band": "18-24", "zip": "02134"},
        {USER: "u2", "gender": "M", "age_band": "25-34", "zip": "94043"},
    ]
    assert data.user_attributes == ["gender", "age_band", "zip"]
    assert not data.is_implicit


def test_csv_declared_rating_scale_wins(tmp_path: Path) -> None:
    folder = put(
        tmp_path,
        {"interactions.csv": "user_id,item_id,rating\nu1,a,3\n", "items.csv": "item_id,title\na,A\n"},
    )
    assert load_csv_dataset(folder, rating_scale=(1, 5)).rating_scale == (1.0, 5.0)
    with pytest.raises(ValueError, match=r"min < max \(got \(5, 1\)\)"):
        load_csv_dataset(folder, rating_scale=(5, 1))


def test_csv_implicit_log(tmp_path: Path) -> None:
    folder = put(
        tmp_path,
        {"interactions.csv": "user_id,item_id\nu1,a\nu1,b\nu2,a\n", "items.csv": "item_id,title\na,A\nb,B\n"},
    )
    data = load_csv_dataset(folder)
    assert data.is_implicit and data.rating_scale is None
    assert data.interactions[RATING].isna().all()
    assert data.interactions[TIMESTAMP].tolist() == [-1, -1, -1]
    assert data.summary()["implicit"] is True


def test_csv_iso_and_integer_timestamps(tmp_path: Path) -> None:
    folder = put(
        tmp_path,
        {
            "interactions.csv": "user_id,item_id,timestamp\n"
            "u1,a,2021-03-04\nu1,b,2021-03-04T10:00:00\nu2,a,2021-03-04T10:00:00+02:00\n"
            "u2,b,1614816000\nu3,a,\nu3,b,1614816000.9\n",
            "items.csv": "item_id,title\na,A\nb,B\n",
        },
    )
    times = load_csv_dataset(folder).interactions[TIMESTAMP].tolist()
    assert times == [1614816000, 1614852000, 1614844800, 1614816000, -1, 1614816000]


def test_csv_crlf_bom_and_padding(tmp_path: Path) -> None:
    inter = "\ufeffuser_id , item_id\n u1 ,a\n\nu2, b \n"
    folder = put(tmp_path, {"interactions.csv": inter, "items.csv": "item_id,title\na,A\nb,\n"}, newline="\r\n")
    data = load_csv_dataset(folder, name="mine")
    assert data.name == "mine"
    assert data.interactions[USER].tolist() == ["u1", "u2"]
    assert data.interactions[ITEM].tolist() == ["a", "b"]
    assert data.items[TITLE].tolist() == ["A", "b"]  # an empty title falls back to the id


def test_csv_through_the_registry(tmp_path: Path) -> None:
    folder = put(tmp_path, {"interactions.csv": "uid,item_id\nu1,a\n", "items.csv": "item_id,title\na,A\n"})
    data = load_dataset("csv", folder, columns={"uid": "user_id"})
    assert data.interactions[USER].tolist() == ["u1"]


# ----------------------------------------------------------------------- movielens

GENRES_100K = (
    "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\nDocumentary|7\n"
    "Drama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\nRomance|14\nSci-Fi|15\n"
    "Thriller|16\nWar|17\nWestern|18\n\n"
)


def flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


def ml_100k(folder: Path) -> Path:
    return put(
        folder,
        {
            "u.data": "1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n3\t3\t1\t889237455\n",
            "u.item": (
                f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags(3, 4, 5)}\n"
                f"2|Misérables, Les (1995)|01-Jan-1995||http://y|{flags(8, 12)}\n"
                f"3|unknown||||{flags(0)}\n"
                f"4|Kolya|24-Jan-1997||http://z|{flags(5)}\n"
            ).encode("latin-1"),
            "u.user": "1|24|M|technician|85711\n2|53|F|other|94043\n3|17|M|student|02134\n",
            "u.genre": GENRES_100K,
        },
    )


def test_ml_100k_layout(tmp_path: Path) -> None:
    data = load_movielens("ml-100k", ml_100k(tmp_path / "ml-100k"))
    assert data.name == "ml-100k" and data.rating_scale == (1.0, 5.0)
    assert data.interactions.to_dict("list") == {
        USER: ["1", "1", "2", "3"],
        ITEM: ["1", "2", "1", "3"],
        RATING: [5.0, 3.0, 4.0, 1.0],
        TIMESTAMP: [874965758, 876893171, 888550871, 889237455],
    }
    items = data.items.set_index(ITEM)
    assert items.loc["2", TITLE] == "Misérables, Les (1995)"
    assert items[CATEGORIES].tolist() == [
        ("Animation", "Children's", "Comedy"),
        ("Drama", "Musical"),
        (),
        ("Comedy",),
    ]
    assert items["year"].tolist() == [1995, 1995, -1, 1997]  # Kolya's year comes from its release date
    assert items[TEXT].tolist() == ["", "", "", ""]
    assert data.users is not None
    assert data.users.to_dict("list") == {
        USER: ["1", "2", "3"],
        "age": [24, 53, 17],
        "age_band": ["18-24", "50-55", "<18"],
        "gender": ["M", "F", "M"],
        "occupation": ["technician", "other", "student"],
        "zip": ["85711", "94043", "02134"],
    }


def test_ml_100k_parent_folder_and_registry(tmp_path: Path) -> None:
    ml_100k(tmp_path / "ml-100k")
    data = load_dataset("ml-100k", tmp_path)  # the folder the zip was extracted into
    assert len(data.interactions) == 4 and len(data.items) == 4


def test_ml_100k_bad_rating_and_missing_file(tmp_path: Path) -> None:
    folder = ml_100k(tmp_path)
    (folder / "u.data").write_text("1\t1\t5\t874965758\n1\t2\t6\t876893171\n")
    with pytest.raises(DataValidationError) as info:
        load_movielens("ml-100k", folder)
    assert info.value.problems == ["u.data, line 2, column 'rating': got '6', expected a rating in the scale [1, 5]"]
    (folder / "u.user").unlink()
    with pytest.raises(DataValidationError) as info:
        load_movielens("ml-100k", folder)
    assert info.value.problems == [
        f"u.user: file not found in {folder}; expected the official MovieLens 100K layout (u.data, u.item, u.user)"
    ]


def test_age_bands_match_ml_1m() -> None:
    ages = pd.Series([7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73])
    assert _age_band(ages).tolist() == [
        "<18",
        "<18",
        "18-24",
        "18-24",
        "25-34",
        "25-34",
        "35-44",
        "35-44",
        "45-49",
        "45-49",
        "50-55",
        "50-55",
        "56+",
        "56+",
    ]


def test_ml_1m_layout(tmp_path: Path) -> None:
    folder = put(
        tmp_path,
        {
            "ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
            "movies.dat": (
                "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
                "2000::Cérémonie, La (1995)::Drama\n"
            ).encode("latin-1"),
            "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
        },
    )
    data = load_movielens("ml-1m", folder)
    assert data.rating_scale == (1.0, 5.0)
    assert data.interactions[ITEM].tolist() == ["1193", "661", "1193"]
    assert data.interactions[TIMESTAMP].tolist() == [978300760, 978302109, 978298413]
    assert data.items[TITLE].tolist()[2] == "Cérémonie, La (1995)"
    assert data.items[CATEGORIES].tolist()[1] == ("Animation", "Children's", "Musical")
    assert data.summary()["items_with_interactions"] == 2 and len(data.items) == 3
    assert data.users is not None
    assert data.users.to_dict("list") == {
        USER: ["1", "2"],
        "age": [1, 56],
        "age_band": ["<18", "56+"],
        "gender": ["F", "M"],
        "occupation": ["K-12 student", "self-employed"],
        "zip": ["48067", "70072"],
    }


def test_ml_1m_bad_codes(tmp_path: Path) -> None:
    folder = put(
        tmp_path,
        {
            "ratings.dat": "1::1::5::978300760\n",
            "movies.dat": "1::A (1999)::Drama\n",
            "users.dat": "1::F::1::10::48067\n2::M::30::99::70072\n",
        },
    )
    with pytest.raises(DataValidationError) as info:
        load_movielens("ml-1m", folder)
    assert info.value.problems == [
        "users.dat, line 2, column 'age': got '30', expected an age code in [1, 18, 25, 35, 45, 50, 56]",
        "users.dat, line 2, column 'occupation': got '99', expected an occupation code 0-20",
    ]


LATEST_SMALL = {
    "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,0.5,964981247\n2,1,5.0,1445714994\n",
    "movies.csv": "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
    '3,"American President, The (1995)",Comedy|Drama|Romance\n5,Unrated Film (2001),(no genres listed)\n',
    "tags.csv": "userId,movieId,tag,timestamp\n2,1,pixar,1445714994\n3,1,Pixar,1445714995\n4,1,fun,1445714996\n",
}


def test_ml_latest_small_layout(tmp_path: Path) -> None:
    data = load_movielens("ml-latest-small", put(tmp_path, LATEST_SMALL, newline="\r\n"))
    assert data.rating_scale == (0.5, 5.0) and data.users is None
    assert data.interactions[RATING].tolist() == [4.0, 0.5, 5.0]
    assert data.items.to_dict("list") == {
        ITEM: ["1", "3", "5"],
        TITLE: ["Toy Story (1995)", "American President, The (1995)", "Unrated Film (2001)"],
        CATEGORIES: [("Adventure", "Animation"), ("Comedy", "Drama", "Romance"), ()],
        TEXT: ["pixar, fun", "", ""],
        "year": [1995, 1995, 2001],
    }


def test_unknown_movielens_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="got 'ml-20m'"):
        load_movielens("ml-20m", tmp_path)


# ------------------------------------------------------------------------ registry


def test_list_datasets() -> None:
    listed = list_datasets()
    assert [d["name"] for d in listed] == ["demo", "ml-100k", "ml-latest-small", "ml-1m", "csv"]
    assert {d["name"]: d["needs_data_dir"] for d in listed} == {
        "demo": False,
        "ml-100k": False,
        "ml-latest-small": False,
        "ml-1m": False,
        "csv": True,
    }
    assert all(d["description"] and "\n" not in d["description"] for d in listed)
    assert set(DATASETS) == {d["name"] for d in listed}


def test_registry_rejects_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError,
        match="unknown dataset 'movies'; expected one of: demo, ml-100k, ml-latest-small, ml-1m, csv",
    ):
        load_dataset("movies")
    with pytest.raises(ValueError, match=r"needs a data_dir .*\(got None\)"):
        load_dataset("csv")
    with pytest.raises(ValueError, match="columns only apply to the csv dataset"):
        load_dataset("ml-100k", tmp_path, columns={"a": "user_id"})
    with pytest.raises(ValueError, match=r"scale only applies to the demo dataset \(got scale=2.0"):
        load_dataset("ml-1m", tmp_path, scale=2.0)
    with pytest.raises(ValueError, match="takes no data_dir"):
        load_dataset("demo", tmp_path)


def test_registry_demo_delegates_to_synthetic(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fake = types.ModuleType("engine.data.synthetic")

    def generate_demo_world(seed: int, *, scale: float = 1.0) -> types.SimpleNamespace:
        calls.append((seed, scale))
        return types.SimpleNamespace(dataset="the dataset")

    fake.generate_demo_world = generate_demo_world  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine.data.synthetic", fake)
    assert load_dataset("demo", seed=7, scale=0.5) == "the dataset"
    assert calls == [(7, 0.5)]


def test_registry_downloads_movielens_when_no_folder_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = put(tmp_path / "ml-latest-small", LATEST_SMALL)
    asked = []
    monkeypatch.setattr(download, "ensure_dataset", lambda name: asked.append(name) or folder)
    data = registry.load_dataset("ml-latest-small")
    assert asked == ["ml-latest-small"] and len(data.items) == 3


# ------------------------------------------------------------------------ download


def fake_zip(name: str, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for member, content in files.items():
            zf.writestr(f"{name}/{member}" if not member.startswith("/") else member[1:], content)
    return buffer.getvalue()


LATEST_SMALL_ZIP = {
    **LATEST_SMALL,
    "links.csv": "movieId,imdbId,tmdbId\n1,0114709,862\n",
    "README.txt": "r\n",
}


class FakeOpener:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.urls: list[str] = []

    def __call__(self, url: str, timeout: float) -> io.BytesIO:
        self.urls.append(url)
        return io.BytesIO(self.payload)


def test_offline_download_explains_the_manual_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, timeout: float) -> None:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError) as info:
        ensure_dataset("ml-1m", tmp_path)
    message = str(info.value)
    assert message.startswith(
        "could not download ml-1m from https://files.grouplens.org/datasets/movielens/"
        "ml-1m.zip (Temporary failure in name resolution); this machine may be offline"
    )
    assert "pass --data-dir <the folder holding ratings.dat>" in message
    assert list(tmp_path.iterdir()) == []  # no partial download left behind


def test_download_verifies_structure_and_extracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses
    import hashlib

    from engine.data import download

    # The real archive's members are pinned by sha256; pin the fake's so the rest of the path runs.
    pins = {m: hashlib.sha256(text.encode()).hexdigest() for m, text in LATEST_SMALL_ZIP.items()}
    archive = dataclasses.replace(download.ARCHIVES["ml-latest-small"], member_sha256=pins)
    monkeypatch.setitem(download.ARCHIVES, "ml-latest-small", archive)
    opener = FakeOpener(fake_zip("ml-latest-small", LATEST_SMALL_ZIP))
    folder = ensure_dataset("ml-latest-small", tmp_path, opener=opener)
    assert folder == tmp_path / "ml-latest-small"
    assert opener.urls == ["https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-latest-small", "ml-latest-small.zip"]
    assert len(load_movielens("ml-latest-small", folder).interactions) == 3
    # A complete folder is used as is: no second request.
    assert ensure_dataset("ml-latest-small", tmp_path, opener=opener) == folder
    assert len(opener.urls) == 1


def test_download_rejects_unpinned_ml_latest_small_content(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="ml-latest-small archive failed its integrity check"):
        ensure_dataset("ml-latest-small", tmp_path, opener=FakeOpener(fake_zip("ml-latest-small", LATEST_SMALL_ZIP)))
    assert list(tmp_path.iterdir()) == []


def test_download_rejects_a_wrong_checksum(tmp_path: Path) -> None:
    files = {m: "x\n" for m in ("u.data", "u.item", "u.user", "u.genre", "u.occupation", "README")}
    with pytest.raises(DownloadError, match="ml-100k archive failed its integrity check"):
        ensure_dataset("ml-100k", tmp_path, opener=FakeOpener(fake_zip("ml-100k", files)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change", ["missing member", "wrong header", "unsafe path", "not a zip"])
def test_download_rejects_a_wrong_structure(tmp_path: Path, change: str) -> None:
    files = dict(LATEST_SMALL_ZIP)
    if change == "missing member":
        del files["tags.csv"]
    elif change == "wrong header":
        files["ratings.csv"] = "user,item\n1,1\n"
    elif change == "unsafe path":
        files["/ml-latest-small/../../evil.txt"] = "x"
    payload = b"not a zip" if change == "not a zip" else fake_zip("ml-latest-small", files)
    with pytest.raises(DownloadError, match="failed its integrity check"):
        ensure_dataset("ml-latest-small", tmp_path, opener=FakeOpener(payload))
    assert list(tmp_path.iterdir()) == []


def test_incomplete_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "ratings.dat").write_text("1::1::5::1\n")
    with pytest.raises(DownloadError, match=r"exists but lacks movies.dat, users.dat, README; delete the folder"):
        ensure_dataset("ml-1m", tmp_path, opener=FakeOpener(b""))
    assert (tmp_path / "ml-1m" / "ratings.dat").read_text() == "1::1::5::1\n"


def test_unknown_archive() -> None:
    with pytest.raises(ValueError, match="no official archive for dataset 'csv'"):
        ensure_dataset("csv")


def test_archive_table_is_consistent() -> None:
    for name, archive in download.ARCHIVES.items():
        assert archive.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert archive.md5 is None or (len(archive.md5) == 32 and int(archive.md5, 16) >= 0)
        assert set(LAYOUT_FILES[name]) <= set(archive.members)  # the loader's files are all verified
