"""Image metadata: A1111 infotext (:mod:`.infotext`), PNG files with their parameters (:mod:`.pngfile`) and
parameters read back from images of sdkit and other tools (:mod:`.imagemeta`)."""
