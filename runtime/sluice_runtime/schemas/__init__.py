"""Records encoded with a schema registry (Avro, Protobuf, JSON Schema), decoded into the
values that filters, templates and the function see (docs/schemas.md).

- ``wire``: the registry wire format (magic byte, schema id, payload);
- ``registry``: the registry client, its cache of schemas by id, outage retries;
- ``avro``, ``protobuf``, ``jsonschema``: one decoder per format, values mapped to JSON;
- ``decoder``: the record decoder the processor calls once per record.
"""
