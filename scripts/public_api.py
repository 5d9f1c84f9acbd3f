#!/usr/bin/env python3
"""Lists the public API of a crate from its rustdoc JSON, one item a line.

Usage: public_api.py target/doc/<crate>.json

Walks the crate from its root module through public modules and
re-exports. Lists modules, types, traits, functions, constants, enum
variants, public fields, inherent methods and the trait impls written in
the crate (not blanket, auto or synthetic ones). Growth of the public API
shows up as new lines in the checked-in listing (scripts/public-api.sh).
"""

import json
import sys

KINDS = {
    "module": "mod",
    "struct": "struct",
    "enum": "enum",
    "trait": "trait",
    "function": "fn",
    "constant": "const",
    "static": "static",
    "type_alias": "type",
    "macro": "macro",
    "union": "union",
    "trait_alias": "trait alias",
}


def main(path):
    doc = json.load(open(path))
    index = doc["index"]
    crate = index[str(doc["root"])]["name"]
    lines = set()
    seen = set()

    def item(item_id):
        return index.get(str(item_id))

    def type_name(ty):
        if ty is None:
            return "?"
        if "resolved_path" in ty:
            return ty["resolved_path"]["path"]
        if "generic" in ty:
            return ty["generic"]
        if "borrowed_ref" in ty:
            return "&" + type_name(ty["borrowed_ref"]["type"])
        if "primitive" in ty:
            return ty["primitive"]
        return next(iter(ty))

    def impls(it, owner):
        kind = next(iter(it["inner"]))
        for impl_id in it["inner"][kind].get("impls", []):
            impl = item(impl_id)
            if impl is None or impl.get("crate_id") != 0:
                continue
            body = impl["inner"]["impl"]
            if body.get("is_synthetic") or body.get("blanket_impl") is not None:
                continue
            trait = body.get("trait")
            if trait is not None:
                lines.add(f"impl {trait['path']} for {owner}")
                continue
            for member_id in body.get("items", []):
                member = item(member_id)
                if member and member.get("visibility") == "public" and member.get("name"):
                    member_kind = KINDS.get(next(iter(member["inner"])), "item")
                    lines.add(f"{member_kind} {owner}::{member['name']}")

    def walk(item_id, path, rename=None):
        it = item(item_id)
        if it is None or it.get("crate_id") != 0:
            return
        kind = next(iter(it["inner"]))
        if kind == "use":
            use = it["inner"]["use"]
            target = use.get("id")
            name = use["name"]
            if use.get("is_glob"):
                lines.add(f"pub use {path}::{use['source']}::*")
                if target is not None:
                    walk_module_items(target, path)
                return
            lines.add(f"pub use {path}::{name} = {use['source']}")
            if target is not None:
                # An item defined in a private module is listed where it is
                # re-exported (the first path that reaches it).
                walk(target, path, name)
            return
        if it.get("visibility") != "public" and path != crate and rename is None:
            return
        name = rename or it.get("name")
        full = f"{path}::{name}" if name and item_id != doc["root"] else path
        if item_id in seen:
            return
        seen.add(item_id)
        lines.add(f"{KINDS.get(kind, kind)} {full}")
        body = it["inner"][kind]
        if kind == "module":
            walk_module_items(item_id, full)
        elif kind == "struct":
            fields = body.get("kind", {}).get("plain", {}).get("fields", [])
            fields += body.get("kind", {}).get("tuple", []) or []
            for field_id in fields:
                field = item(field_id) if field_id is not None else None
                if field and field.get("visibility") == "public":
                    lines.add(f"field {full}::{field.get('name')}")
            impls(it, full)
        elif kind == "enum":
            for variant_id in body.get("variants", []):
                variant = item(variant_id)
                if variant:
                    lines.add(f"variant {full}::{variant['name']}")
            impls(it, full)
        elif kind == "trait":
            for member_id in body.get("items", []):
                member = item(member_id)
                if member and member.get("name"):
                    member_kind = KINDS.get(next(iter(member["inner"])), "item")
                    lines.add(f"trait {member_kind} {full}::{member['name']}")
        elif kind in ("union",):
            impls(it, full)

    def walk_module_items(module_id, path):
        module = item(module_id)
        if module is None:
            return
        for child in module["inner"]["module"]["items"]:
            walk(child, path)

    walk(doc["root"], crate)
    for line in sorted(lines):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])
