"""Frame analysis: the ``Analyzer`` protocol and budgets (``local``, with the offline Pillow
analyzer) and AWS Rekognition (``rekognition``)."""
