/** Exit code for usage and configuration errors, for every command. */
export const EXIT_USAGE = 2;
