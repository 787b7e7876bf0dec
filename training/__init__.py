"""Training the embedded ``tiny`` model (:mod:`.tiny`, ``make train-tiny``) on procedural shape scenes
(:mod:`.shapes`, also the pixel judge of ``make adherence``). Not part of the installed package."""
