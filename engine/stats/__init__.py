"""Reader-study statistics (pure functions): ROC/AUC, DeLong, Obuchowski-Rockette MRMC and beyond.

Import from the submodules: ``roc``, ``delong``, ``mrmc`` (OR/Hillis analysis of any figure of
merit: ``or_analysis``), ``froc`` (lesion localisation: wAFROC/AFROC/inferred ROC), ``power``
(Hillis-Obuchowski study sizing), ``clustered`` (Obuchowski 1997), ``splitplot`` (split-plot OR),
``binary`` (sensitivity/specificity, Wilson CIs, as MRMC endpoints).
"""
