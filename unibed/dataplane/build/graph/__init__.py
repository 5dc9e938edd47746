"""The build's Beam graph, one composite transform per stage (composed in
unibed/dataplane/build/pipeline.py):

    elements.py       what flows between the stages: Meta, WriteInput (Candidate inside Preprocess)
    read.py           ReadAndPreprocess: units -> metas + write inputs, rejections, counts
    resolve.py        ResolveKeys: one input per key; duplicate ids, missing images
    dedup.py          Deduplicate: identical hashes, near duplicates, keep rule
    splits.py         AssignSplits: the survivors' train/validation split, per class
    examples.py       JoinSplits: image x split -> Record (a reference to its Example)
    write_shards.py   WriteShards: records -> train-*/validation-* shards
    side_products.py  WriteSideProducts and their readers (JSON lines in the work folder)
    join.py           the joins' tagging: CoGroupByKey's result in fewer steps
"""
