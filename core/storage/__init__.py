"""Where videos and frames are kept: the ``ObjectStore`` protocol and ``LocalStore``
(``local``), and ``S3Store`` (``s3``)."""
