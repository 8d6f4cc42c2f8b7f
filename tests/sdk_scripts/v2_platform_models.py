"""opperai==1.7.2's `language_models` methods against taskgate, then a call naming the alias made.

Usage: v2_platform_models.py '<json config>' with custom_name, alias_name, api_base and api_key.
Prints one JSON document with what the client saw.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from opperai_v2_client import opper, plain, refused


def main() -> None:
    cfg = json.loads(sys.argv[1])
    models = opper.language_models
    seen: dict[str, Any] = {}
    listed = models.list(offset=0, limit=3)
    seen["list"] = {"total": listed.meta.total_count, "first": plain(listed.data[0])}
    created = models.register_custom(name=cfg["custom_name"], identifier="gpt-4o-mini",
                                     extra={"api_base": cfg["api_base"]}, api_key=cfg["api_key"])
    seen["created"] = plain(created)
    seen["list_custom"] = plain(models.list_custom(limit=100).data)
    seen["get_custom"] = plain(models.get_custom(model_id=created.id))
    seen["get_custom_by_name"] = plain(models.get_custom_by_name(name=cfg["custom_name"]))
    seen["update_custom"] = plain(models.update_custom(model_id=created.id, identifier="gpt-4o-mini",
                                                       extra={"api_base": cfg["api_base"], "api_version": "v1"}))
    seen["duplicate"] = refused(lambda: models.register_custom(name=cfg["custom_name"], identifier="x",
                                                               extra={"api_base": cfg["api_base"]}))
    seen["missing"] = refused(lambda: models.get_custom(model_id="no-such-model"))
    alias = models.create_alias(name=cfg["alias_name"], fallback_models=["openai/flaky-model", cfg["custom_name"]],
                                description="flaky, then mine")
    seen["alias"] = plain(alias)
    seen["list_aliases"] = plain(models.list_aliases(limit=100).data)
    seen["get_alias"] = plain(models.get_alias(alias_id=alias.id))
    seen["get_alias_by_name"] = plain(models.get_alias_by_name(name=cfg["alias_name"]))
    seen["update_alias"] = plain(models.update_alias(alias_id=alias.id, description="changed"))
    seen["loop"] = refused(lambda: models.update_alias(alias_id=alias.id, fallback_models=[cfg["alias_name"]]))
    response = opper.call(name="sdk-alias-call", input="hello", model=cfg["alias_name"])
    seen["call"] = {"message": response.message, "span_id": response.span_id}
    models.delete_alias(alias_id=alias.id)
    models.delete_custom(model_id=created.id)
    seen["after_delete"] = [refused(lambda: models.get_alias(alias_id=alias.id)),
                            refused(lambda: models.get_custom(model_id=created.id))]
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
