"""What is known of one patient: target lesions on the CT's grid, their sites and RECIST sizes, the four clinical facts.

``lesions`` loads masks from segmentations, label maps or mask files;
``measurements`` gives RECIST 1.1 diameters (mm); ``recist`` the target rules;
``sites`` the site vocabulary; ``clinical_facts`` the facts of the clinical
model; ``ids`` the patient id a result carries.
"""
