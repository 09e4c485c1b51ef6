"""The panel's sections as Qt widget classes: the only Qt code besides the module file.

Each section binds a part of the panel (``Resources/UI/ABCImmunoResponse.ui``)
to the module's Logic and shows what the Logic returns; rules, file formats
and numerics stay in the bridge (``ABCImmunoResponseLib``) and the core
(``abcir``). ``TaskRunner`` is the one runner of long work for every section.
"""
