"""Message translation under os-xenapi 0.3.4's names (``_``, ``_LI``, ``_LW``, ``_LE``, ``_LC``,
``translate``, ``get_available_languages``), on the standard library's gettext.

0.3.4 used oslo.i18n's ``TranslatorFactory('os-xenapi')``; this module behaves as that one does
with lazy translation off (its default): ``_`` returns the message in the process's language
when a catalogue ``os-xenapi.mo`` exists (in ``$OS_XENAPI_LOCALEDIR``, oslo.i18n's variable,
else the system's locale directory), the message itself otherwise.
"""

from __future__ import annotations

import gettext
import os
import sys
from typing import Any

DOMAIN = "os-xenapi"
LOCALEDIR_VARIABLE = "OS_XENAPI_LOCALEDIR"


def _localedir() -> str:
    return os.environ.get(LOCALEDIR_VARIABLE) or os.path.join(sys.base_prefix, "share", "locale")


def _(msg: str) -> str:
    """``msg`` in the process's language (``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``)."""
    return gettext.translation(DOMAIN, localedir=_localedir(), fallback=True).gettext(msg)


# 0.3.4's log-level translators; oslo.i18n dropped translated logs and so do these.
_LI = _LW = _LE = _LC = _


def translate(value: Any, user_locale: str | None = None) -> Any:
    """``value`` as oslo.i18n's ``translate`` returns a message that is not lazy: unchanged
    (``_`` has already translated it)."""
    return value


def get_available_languages() -> list[str]:
    """``en_US`` (the messages' own language) and every language with an os-xenapi
    catalogue, as oslo.i18n lists them."""
    languages = ["en_US"]
    directory = _localedir()
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return languages
    for name in names:
        if name != "en_US" and gettext.find(DOMAIN, directory, languages=[name]):
            languages.append(name)
    return languages
