"""A small example project for `neurodepot demo`, built from real scanner data shipped here.

`data/siemens_epi_ap/` holds two Siemens EPI mosaic DICOM files from the public dcm_qa_nih
regression set of dcm2niix (NIH, 2018; BSD 2-Clause, see `data/LICENSE`); their patient is a
placeholder (`Test^Regression`).
"""
