"""Per-dimension reasons and preferences in words: what staff read on a search page."""

from matching.vocabulary.reasons import dimension_reasons, preferences_in_words

NAMES = {"yuzawa_naeba": "Naeba", "hakuba_happo": "Hakuba Happo-one"}
REGIONS = {"yuzawa_naeba": "Niigata Prefecture", "hakuba_happo": "Nagano Prefecture"}
PREFS = {"role": "buddy", "skill_level_min": 3, "skill_level_max": 7, "resorts": ["yuzawa_naeba"],
         "dates": ["2027-01-15", "2027-01-16"], "include_knowledge_score": True, "knowledge_score": 70}  # fmt: skip


def reasons(breakdown, profile, prefs=PREFS):
    return dimension_reasons(
        breakdown=breakdown, preferences=prefs, profile=profile, resort_names=NAMES, resort_regions=REGIONS
    )


def test_a_same_resort_shared_date_coach_result_reads_as_sentences():
    said = reasons(
        {"skill": 1.0, "location": 1.0, "availability": 1.0, "role": 0.8, "knowledge": 0.9},
        {"skill_level": 6, "role": "coach", "resorts": ["yuzawa_naeba"], "available_dates": ["2027-01-15"],
         "knowledge_score": 80},
    )  # fmt: skip
    assert said == {
        "skill": "skill 6 within 3 to 7",
        "location": "same resort: Naeba",
        "availability": "shared date 2027-01-15",
        "role": "coach for a buddy search",
        "knowledge": "knowledge 80 vs the seeker's 70",
    }


def test_region_unknown_dates_other_role_and_missing_knowledge():
    said = reasons(
        {"skill": 1.0, "location": 0.5, "availability": 0.2, "role": 0.1, "knowledge": 0.5},
        {"skill_level": 4, "role": "student", "regions": ["Niigata Prefecture"], "available_dates": []},
    )
    assert said["location"] == "same region: Niigata Prefecture"
    assert said["availability"] == "the candidate lists no dates"
    assert said["role"] == "student for a buddy search"
    assert said["knowledge"] == "a knowledge score is missing on one side"


def test_a_profile_deleted_since_still_gets_reasons_from_the_breakdown():
    prefs = {"role": "buddy", "skill_level_min": 1, "skill_level_max": 10, "resorts": ["yuzawa_naeba"]}
    said = reasons({"skill": 1.0, "location": 1.0, "availability": 0.0, "role": 1.0, "knowledge": None}, None, prefs)
    assert said["location"] == "same resort" and said["availability"] == "no shared date"
    assert said["knowledge"] == "not scored (the search did not ask)" and said["role"] == "buddy, as sought"


def test_preferences_in_words():
    words = dict(preferences_in_words({**PREFS, "vetting_required": True, "required_certifications": ["ISIA"],
                                       "limit": 10}, resort_names=NAMES))  # fmt: skip
    assert words["Looking for"] == "a buddy"
    assert words["Skill"] == "levels 3 to 7"
    assert words["Resorts"] == "Naeba" and words["Regions"] == "any"
    assert words["Dates"] == "2027-01-15, 2027-01-16"
    assert words["Knowledge"] == "scored (seeker's score 70)"
    assert words["Certifications"] == "one of ISIA" and words["Vetting"] == "GlobalCoach vetting required"
    assert words["Results"] == "top 10"
