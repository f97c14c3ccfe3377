"""validate's cross-row checks: age against offset, one image labelled twice, duplicates, licences."""

from __future__ import annotations

import hashlib

from curation.dedup import find_duplicates
from curation.validate import ERROR, WARNING, validate_collection
from cxrbank.collection import Collection
from cxrbank.schema import blank_row
from tests.fixtures.dedup_images import encoded, radiograph


def collection_of(tmp_path, files: list[tuple[str, bytes, dict]]) -> Collection:
    collection = Collection.create(tmp_path / "col")
    rows = []
    for name, data, values in files:
        (collection.images_dir / name).write_bytes(data)
        rows.append({**blank_row(), "patientid": "1", "finding": "Pneumonia/Viral/COVID-19",
                     "modality": "X-ray", "view": "PA", "license": "CC BY 4.0",
                     "sha256": hashlib.sha256(data).hexdigest(), **values,
                     "folder": "images", "filename": name})
    with collection.lock():
        collection.write_rows(rows)
    return collection


def problems(collection: Collection, level: str) -> list[str]:
    return [p.line() for p in validate_collection(collection) if p.level == level]


def test_age_that_falls_as_offset_grows_is_an_error(tmp_path):
    collection = collection_of(tmp_path, [
        ("a.png", encoded(radiograph(1)), {"offset": "0", "age": "65"}),
        ("b.png", encoded(radiograph(2)), {"offset": "10", "age": "61"}),
    ])
    assert any("row 2, age: patient 1 is 61 at offset 10 but 65" in line
               for line in problems(collection, ERROR))


def test_same_bytes_labelled_differently_are_errors(tmp_path):
    data = encoded(radiograph(3))
    collection = collection_of(tmp_path, [
        ("a.png", data, {}), ("b.png", data, {"patientid": "2", "finding": "No Finding"}),
    ])
    errors = problems(collection, ERROR)
    assert any("b.png is a duplicate (exact) of row 1 (a.png)" in line for line in errors)
    assert any("row 2, finding: the same image is labelled 'No Finding' here" in line
               for line in errors)


def test_near_copy_found_once_dedup_has_fingerprinted(tmp_path):
    film = radiograph(4)
    collection = collection_of(tmp_path, [
        ("a.png", encoded(film), {}),
        ("b.jpg", encoded(film.resize((160, 180)), "JPEG", 70), {"patientid": "2", "view": "AP"}),
    ])
    assert not any("duplicate" in line for line in problems(collection, ERROR))
    find_duplicates(collection)
    errors = problems(collection, ERROR)
    assert any("b.jpg is a duplicate (near) of row 1" in line for line in errors)
    assert any("row 2, view: the same image is labelled 'AP' here and 'PA'" in line for line in errors)


def test_near_identical_films_of_one_patient_on_two_days_are_a_warning(tmp_path):
    film = encoded(radiograph(5))
    collection = collection_of(tmp_path, [
        ("day0.png", film, {"offset": "0"}),
        ("day4.jpg", encoded(radiograph(5), "JPEG", 90), {"offset": "4"}),
    ])
    find_duplicates(collection)
    warnings = problems(collection, WARNING)
    assert any("near-identical to row 1 (day0.png) of the same patient 1 on another day" in line
               for line in warnings)
    assert not any("duplicate" in line for line in problems(collection, ERROR))


def test_nd_and_nc_licences_are_flagged_for_release_notes(tmp_path):
    collection = collection_of(tmp_path, [
        ("a.png", encoded(radiograph(6)), {"license": "CC BY-NC-ND 4.0"}),
        ("b.png", encoded(radiograph(7)), {"license": "CC BY-NC-SA", "patientid": "2"}),
        ("c.png", encoded(radiograph(8)), {"license": "CC BY 4.0", "patientid": "3"}),
        ("d.png", encoded(radiograph(9)), {"license": "CC BY-NC-SA", "patientid": "4"}),
    ])
    warnings = [line for line in problems(collection, WARNING) if "license" in line]
    assert warnings == [
        "warning: row 1, license: CC BY-NC-ND 4.0 (no derivatives and non-commercial) on 1 rows:"
        " name them in the release notes",
        "warning: row 2, license: CC BY-NC-SA (non-commercial) on 2 rows: name them in the"
        " release notes",
    ]
