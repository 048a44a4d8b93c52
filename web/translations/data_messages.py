"""Messages the templates translate from data, listed here so ``pybabel extract`` finds them.

``_form.html`` shows each quick pick as ``pick_label(pick)``: the default picks in
``web/settings.py`` are data, invisible to the extractor, so they are named
here with the no-op marker ``N_``. Picks a planner adds later are shown as
written. Nothing imports this module; ``tests/test_browser.py`` checks that the
list still covers ``DEFAULT_QUICK_PICKS``.

``planner/privacy.html`` names the places besides the database that a delete
or a purge reached by their ``Copies.name``: those are listed too, and the
same test checks that every place :func:`matcher.store.privacy.instance_copies`
finds is among them.
"""


def N_(message: str) -> str:
    """Mark a message for extraction and return it untranslated (the gettext convention)."""
    return message


QUICK_PICKS = (
    # moods
    N_("calm"),
    N_("romantic"),
    N_("adventurous"),
    N_("playful"),
    N_("bold"),
    N_("elegant"),
    N_("creative"),
    # scent families
    N_("floral"),
    N_("woody"),
    N_("fresh"),
    N_("citrus"),
    N_("spicy"),
    N_("powdery"),
)

COPY_PLACES = (
    # matcher.store.privacy.Corrections
    N_("corrections"),
    # web.jobs.erasure.BatchCopies
    N_("batch files"),
    # matcher.store.privacy: the corrections kept in every published roster version
    N_("published rosters"),
)
